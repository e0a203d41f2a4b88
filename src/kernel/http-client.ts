/**
 * undici, for the parts that make HTTP requests (webhooks, channels, OpenAI-compatible
 * endpoints, doctor). It costs ~40 ms and ~13 MB to load, so callers import this module
 * lazily (`await import("../kernel/http-client.js")`) and only a server that sends something pays.
 * A static re-export keeps undici's named exports whether it is bundled or not (a dynamic
 * import of a bundled CommonJS module would put them under `default`).
 */
export { Agent, request } from "undici";
