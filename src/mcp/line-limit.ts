import { Transform, type TransformCallback } from "node:stream";

/** One message at most; the SDK's own buffer holds 10 MiB, and each message is handed to it alone. */
export const MAX_STDIO_MESSAGE_BYTES = 8 * 1024 * 1024;

/** The error a message over MAX_STDIO_MESSAGE_BYTES gets, and the answer to it when it was a request. */
export function tooLargeAnswer(head: string, bytes: number, tail: string): { message: string; answer: object | null } {
  const id = sniffId(head, tail);
  const message = `Message too large: ${bytes} bytes; one message may have at most ${MAX_STDIO_MESSAGE_BYTES} bytes. It was not read.`;
  // A request gets its error answer; a notification (no id) cannot be answered.
  return { message, answer: id === null ? null : { jsonrpc: "2.0", id, error: { code: -32600, message } } };
}

/**
 * What is kept of each end of a message that is too large, to find its id for the error
 * answer: the SDK's client writes the id last ({method, params, jsonrpc, id}), others first.
 */
const HEAD_BYTES = 256;

/**
 * Cuts a byte stream into newline-framed messages of at most `maxBytes` each. The SDK's stdio
 * transport closes the whole connection when one message overflows its buffer (the server
 * would then exit without a word); this passes every message that fits, one at a time, and
 * drops one that does not fit, handing its first bytes to `onOversized` so the caller can
 * answer it with an error and keep serving.
 */
export class LineFramer {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;
  private head = Buffer.alloc(0);
  private tail = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly onOversized: (head: string, bytes: number, tail: string) => void,
  ) {}

  /** Hands each whole message in `chunk` (with its newline) to `onLine`. */
  feed(chunk: Buffer, onLine: (line: Buffer) => void): void {
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
      else onLine(Buffer.concat([...this.parts, Buffer.from("\n")]));
      this.parts = [];
      this.size = 0;
      this.skipping = false;
    }
  }

  /** The start of a message not ended yet, for a reader that takes over (nothing of one being dropped). */
  rest(): Buffer {
    return this.skipping ? Buffer.alloc(0) : Buffer.concat(this.parts);
  }

  private keepTail(piece: Buffer): void {
    const joined = piece.length >= HEAD_BYTES ? piece : Buffer.concat([this.tail, piece]);
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - HEAD_BYTES)));
  }
}

/** LineFramer as a stream: what the SDK's stdio transport reads in place of stdin. */
export class LineLimiter extends Transform {
  private readonly framer: LineFramer;

  constructor(maxBytes: number, onOversized: (head: string, bytes: number, tail: string) => void) {
    super();
    this.framer = new LineFramer(maxBytes, onOversized);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.framer.feed(chunk, (line) => this.push(line));
    done();
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
