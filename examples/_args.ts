// Private helper for the examples: `--name value` flags with defaults.
import { parseArgs } from "node:util";

/** Parses `--key value` string flags; numbers are converted by the caller. */
export function flags(defaults: Record<string, string>): Record<string, string> {
  const options = Object.fromEntries(
    Object.keys(defaults).map((k) => [k, { type: "string" as const }]),
  );
  const { values } = parseArgs({ args: Deno.args, options, strict: true });
  return { ...defaults, ...values } as Record<string, string>;
}
