import { expect, it } from "vitest";
import { API_METHODS, ForwardingApi, type ApiMethod } from "../../src/core/api.js";

it("forwards every method of API_METHODS, by name and with its arguments (the Host's forwarders come from that one list)", async () => {
  const calls: [ApiMethod, unknown][] = [];
  class Recorder extends ForwardingApi {
    protected async call<T>(method: ApiMethod, args: unknown): Promise<T> {
      calls.push([method, args]);
      return `answer of ${method}` as T;
    }
  }
  const api = new Recorder() as unknown as Record<ApiMethod, (a: unknown) => Promise<unknown>>;
  for (const [i, method] of API_METHODS.entries()) {
    expect(await api[method]({ i })).toBe(`answer of ${method}`);
  }
  expect(calls).toEqual(API_METHODS.map((m, i) => [m, { i }]));
});
