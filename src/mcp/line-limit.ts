import { Transform, type TransformCallback } from "node:stream";

/** What is kept of a message that is too large, to find its id for the error answer. */
const HEAD_BYTES = 256;

/**
 * Cuts stdin into newline-framed messages of at most `maxBytes` each. The SDK's stdio
 * transport closes the whole connection when one message overflows its buffer (the server
 * would then exit without a word); this passes every message that fits, one at a time, and
 * drops one that does not fit, handing its first bytes to `onOversized` so the caller can
 * answer it with an error and keep serving.
 */
export class LineLimiter extends Transform {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;
  private head = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly onOversized: (head: string, bytes: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let rest = chunk;
    while (rest.length) {
      const nl = rest.indexOf(10);
      const piece = nl === -1 ? rest : rest.subarray(0, nl);
      rest = nl === -1 ? Buffer.alloc(0) : rest.subarray(nl + 1);
      if (this.skipping) {
        this.size += piece.length;
      } else if (this.size + piece.length > this.maxBytes) {
        this.head = Buffer.concat([...this.parts, piece]).subarray(0, HEAD_BYTES);
        this.parts = [];
        this.size += piece.length;
        this.skipping = true;
      } else {
        this.parts.push(piece);
        this.size += piece.length;
      }
      if (nl === -1) break;
      // A message ends here.
      if (this.skipping) this.onOversized(this.head.toString("utf8"), this.size);
      else this.push(Buffer.concat([...this.parts, Buffer.from("\n")]));
      this.parts = [];
      this.size = 0;
      this.skipping = false;
    }
    done();
  }
}

/** The request id at the start of a JSON-RPC message's text, if it can be read there. */
export function sniffId(head: string): string | number | null {
  const m = /"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})/.exec(head);
  if (!m) return null;
  try {
    return JSON.parse(m[1]) as string | number;
  } catch {
    return null;
  }
}
