const hidden = '[secret]';

/** A value that must never reach a log, JSON output or argv. Read it only with reveal(). */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return hidden;
  }

  toJSON(): string {
    return hidden;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secret(${hidden})`;
  }
}
