import type { TSchema } from './schema.js';
import type { AnyStep } from './types.js';

/**
 * What the step schemas say, for people and editors: the README's parameter tables and the
 * playbooks' JSON Schema. Both are generated from the same definitions that validate parameters,
 * and a test keeps the checked-in copies current (`npm run docs` rewrites them).
 */
function typeOf(schema: TSchema): string {
  if (schema['what']) return String(schema['what']);
  if (schema['const'] !== undefined) return `\`${JSON.stringify(schema['const'])}\``;
  if (schema['anyOf']) return (schema['anyOf'] as TSchema[]).map(typeOf).join(' or ');
  if (schema['enum']) return (schema['enum'] as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' or ');
  switch (schema['type']) {
    case 'array': return `list of ${typeOf(schema['items'] as TSchema)}`;
    case 'integer': return schema['minimum'] !== undefined && schema['maximum'] !== undefined ? `integer ${schema['minimum']}-${schema['maximum']}` : 'integer';
    case 'null': return '`null`';
    case 'object': return schema['properties'] ? `{ ${Object.keys(schema['properties'] as object).join(', ')} }` : 'mapping';
    default: return String(schema['type'] ?? 'any');
  }
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** One Markdown table per step: parameter, type, default, description. */
export function parameterTables(steps: readonly AnyStep[]): string {
  return steps.map((step) => {
    const properties = Object.entries((step.params['properties'] ?? {}) as Record<string, TSchema>);
    const required = new Set((step.params['required'] as string[] | undefined) ?? []);
    const rows = properties.map(([name, schema]) => {
      const fallback = schema['default'] === undefined ? (required.has(name) ? '(required)' : '') : `\`${JSON.stringify(schema['default'])}\``;
      return `| \`${name}\` | ${cell(typeOf(schema))} | ${cell(fallback)} | ${cell(String(schema['description'] ?? ''))} |`;
    });
    const body = rows.length ? ['| parameter | type | default | description |', '|---|---|---|---|', ...rows] : ['No parameters.'];
    return [`#### \`${step.id}\`: ${step.title}`, '', ...body].join('\n');
  }).join('\n\n');
}

/** The JSON Schema of a playbook file: each step entry's params checked against that step's schema. */
export function playbookSchema(steps: readonly AnyStep[]): object {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'zanuri playbook',
    description: 'Generated from the step definitions in src/steps/ by `npm run docs`; do not edit.',
    type: 'object',
    additionalProperties: false,
    required: ['id', 'steps'],
    properties: {
      id: { type: 'string', pattern: '^[a-z0-9-]+$' },
      title: { type: 'string' },
      steps: {
        type: 'array',
        minItems: 1,
        items: {
          oneOf: steps.map((step) => ({
            type: 'object',
            additionalProperties: false,
            required: ['step'],
            properties: { step: { const: step.id, description: step.title }, params: optional(strip(step.params)) },
          })),
        },
      },
    },
  };
}

/** A playbook may leave required parameters to --set or the profile (certbot's domain): none is required in the file. */
function optional(schema: object): object {
  const { required: _, ...rest } = schema as { required?: unknown };
  return rest;
}

/** The schema as plain JSON Schema: TypeBox's symbols and our `what` words dropped. */
function strip(schema: TSchema): object {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => (key === 'what' ? undefined : value))) as object;
}
