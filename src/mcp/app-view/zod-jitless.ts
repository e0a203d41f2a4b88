/**
 * Imported first by view.ts. zod decides, as each object schema is built, whether it may
 * compile a fast parser with `new Function`, and probes for that once; under the MCP Apps
 * default CSP (no 'unsafe-eval') the probe is a violation that the host reports. ext-apps
 * turns the compiler off in App's constructor, after the SDK has built its schemas at import
 * time: this turns it off before any of them exists.
 */
import { config } from "zod/v4/core";

config({ jitless: true });
