// Private: ids of jobs and models. Time-ordered (so a KV listing is in
// creation order) and safe as a folder name.
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const PATTERN = /^(job|mdl)_[0-9a-z]{17}$/;

/** A new id such as `job_0lx2k3m9a4f8c1d2e`: 9 chars of time, 8 random. */
export function newId(kind: "job" | "mdl"): string {
  const time = Date.now().toString(36).padStart(9, "0");
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const rand = Array.from(bytes, (b) => ALPHABET[b % 36]).join("");
  return `${kind}_${time}${rand}`;
}

/** Whether `id` is a well-formed id of `kind` (anything else names nothing). */
export function isId(kind: "job" | "mdl", id: string): boolean {
  return PATTERN.test(id) && id.startsWith(`${kind}_`);
}
