import type { Secret } from './secret.js';

/** File content as a step declares it: literal text, or a rendered template that names its source. */
export interface Content {
  readonly text: string | Buffer | Secret;
  /** The template it was rendered from, and the operator's override when one replaced it. */
  readonly source?: string;
}

/** A template variable: text, a number, a flag, a Secret (the rendered file becomes a Secret), or lists and maps of them. */
export type TemplateValue = string | number | boolean | null | undefined | { reveal(): string } | readonly TemplateValue[] | { readonly [key: string]: TemplateValue };

/** Renders the template files of templates/ (or an operator's override of one) without logic. */
export interface Templates {
  render(name: string, vars: Readonly<Record<string, TemplateValue>>): Content;
}
