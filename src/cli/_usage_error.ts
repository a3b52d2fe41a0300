// Private: the CLI's usage error, printed without a stack trace (exit status 2).

/** A bad command line: printed as a message, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
