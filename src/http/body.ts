import type http from "node:http";
import type { IncomingMessage } from "node:http";
import { UserError } from "../kernel/errors.js";

/** The body as text, or null when it is larger than `max` bytes (the rest is discarded, not buffered). */
export function readBody(req: IncomingMessage, max: number): Promise<string | null> {
  if (Number(req.headers["content-length"]) > max) {
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      chunks.length = 0;
      resolve(null);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE")
        reject(new UserError(`Port ${port} on ${host} is already in use: stop the other server, or pass --port (0 picks a free one).`));
      else if (err.code === "EACCES") reject(new UserError(`Not allowed to listen on port ${port}: pick a port above 1023 with --port.`));
      else if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") {
        reject(new UserError(`Cannot listen on host "${host}": it is not an address of this machine (${err.code}).`));
      } else reject(err);
    });
    server.listen({ host, port }, () => resolve());
  });
}
