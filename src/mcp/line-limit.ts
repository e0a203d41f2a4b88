import { Transform, type TransformCallback } from "node:stream";

/**
 * What is kept of each end of a message that is too large, to find its id for the error
 * answer: the SDK's client writes the id last ({method, params, jsonrpc, id}), others first.
 */
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
  private tail = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly onOversized: (head: string, bytes: number, tail: string) => void,
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
        this.keepTail(piece);
      } else if (this.size + piece.length > this.maxBytes) {
        const all = Buffer.concat([...this.parts, piece]);
        this.head = all.subarray(0, HEAD_BYTES);
        this.tail = Buffer.from(all.subarray(Math.max(0, all.length - HEAD_BYTES)));
        this.parts = [];
        this.size += piece.length;
        this.skipping = true;
      } else {
        this.parts.push(piece);
        this.size += piece.length;
      }
      if (nl === -1) break;
      // A message ends here.
      if (this.skipping) this.onOversized(this.head.toString("utf8"), this.size, this.tail.toString("utf8"));
      else this.push(Buffer.concat([...this.parts, Buffer.from("\n")]));
      this.parts = [];
      this.size = 0;
      this.skipping = false;
    }
    done();
  }

  private keepTail(piece: Buffer): void {
    const joined = piece.length >= HEAD_BYTES ? piece : Buffer.concat([this.tail, piece]);
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - HEAD_BYTES)));
  }
}

/**
 * The request id of a JSON-RPC message too large to parse: the last key of the object (as
 * the SDK's client writes it), else the first "id" at its start.
 */
export function sniffId(head: string, tail = ""): string | number | null {
  const last = /"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})\s*\}\s*$/.exec(tail);
  const m = last ?? /"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})/.exec(head);
  if (!m) return null;
  try {
    return JSON.parse(m[1]) as string | number;
  } catch {
    return null;
  }
}
