/** Compares dotted versions numerically ("5.10" > "5.4", "12.1" = "12.1.0"); anything after a non-numeric part is ignored. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => (/^\D*(\d+(?:\.\d+)*)/.exec(v)?.[1] ?? '0').split('.').map(Number);
  const left = parts(a);
  const right = parts(b);
  for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
    const diff = (left[i] ?? 0) - (right[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

export const atLeast = (version: string, minimum: string): boolean => compareVersions(version, minimum) >= 0;
