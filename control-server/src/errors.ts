/** Errors that carry the HTTP status a client should see. The error handler shapes them. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFound extends HttpError {
  constructor(message: string) {
    super(404, message);
  }
}

export class Conflict extends HttpError {
  constructor(message: string) {
    super(409, message);
  }
}

export class UnprocessableEntity extends HttpError {
  constructor(message: string) {
    super(422, message);
  }
}

export class PayloadTooLarge extends HttpError {
  constructor(message: string) {
    super(413, message);
  }
}

export class BadRequest extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

/** A condition of the server, not of the request: the client should try again later. */
export class ServiceUnavailable extends HttpError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, message);
  }
}

/**
 * The database has no room for the write (SQLITE_FULL: the disk or the file's size limit).
 * Nothing of that write was stored; reads still work, and writes succeed again once space returns.
 */
export class DatabaseFull extends ServiceUnavailable {
  constructor() {
    super('the database is full (no space left on its disk): nothing was stored; try again later', 30);
  }
}
