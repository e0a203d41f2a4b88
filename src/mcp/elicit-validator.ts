import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";

type Ajv = { compile(schema: unknown): ((input: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null } };

/**
 * The SDK checks an elicitation's answer against the schema the server asked with, through a
 * validator it would otherwise build with ajv at start-up (10 ms and more of every start, for
 * servers that rarely ask anything). This one uses our own lazily loaded ajv
 * (core/output-validator.ts): `prepare()` loads it before the server asks.
 */
export class LazyAjvValidator implements jsonSchemaValidator {
  private ajv: Ajv | null = null;

  async prepare(): Promise<void> {
    this.ajv ??= (await import("../core/output-validator.js")).validator as unknown as Ajv;
  }

  getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
    if (!this.ajv) throw new Error("The elicitation validator was used before prepare(); call it before elicitInput.");
    const check = this.ajv.compile(schema);
    return (input: unknown) => {
      if (check(input)) return { valid: true, data: input as T, errorMessage: undefined };
      const first = check.errors?.[0];
      return {
        valid: false,
        data: undefined,
        errorMessage: first ? `${first.instancePath || "answer"} ${first.message ?? "is not valid"}` : "The answer does not match the schema.",
      };
    };
  }
}
