/**
 * How a tool call's step key is made from its arguments: `namespace.method:<hash>#<n>`, the hash
 * over the arguments' canonical JSON (keys sorted at every level). The guest runtime makes keys
 * (it answers replays without crossing to the host), and the host makes the same hash again from
 * the JSON text it received, so a key always names the arguments the tool is given: an approval
 * or a checkpoint found by key can only be spent on those arguments.
 *
 * `createStepHasher` runs in both places: its source text is evaluated inside each isolate too,
 * so it may use nothing from this module's scope, and it captures the intrinsics it calls before
 * any program runs (a program that replaces `Array.prototype.sort` changes nothing here).
 */
export function createStepHasher(): (value: unknown) => string {
  const stringify = JSON.stringify;
  const objectKeys = Object.keys;
  const isArray = Array.isArray;
  const reflectApply = Reflect.apply;
  const arraySort = Array.prototype.sort;
  const imul = Math.imul;

  // Only ever given what JSON.parse made: plain data, no getters, no cycles.
  function canonical(value: unknown): string {
    if (value === null || typeof value !== "object") return stringify(value) ?? "null";
    if (isArray(value)) {
      let out = "[";
      for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + canonical(value[i]);
      return `${out}]`;
    }
    const record = value as Record<string, unknown>;
    const keys = reflectApply(arraySort, objectKeys(record), []) as string[];
    let out = "{";
    for (let i = 0; i < keys.length; i++) {
      const name = keys[i] as string;
      out += `${i === 0 ? "" : ","}${stringify(name)}:${canonical(record[name])}`;
    }
    return `${out}}`;
  }

  const HEX = "0123456789abcdef";
  function hex8(word: number): string {
    let out = "";
    for (let shift = 28; shift >= 0; shift -= 4) out += HEX[(word >>> shift) & 15];
    return out;
  }
  function avalanche(word: number): number {
    let x = word ^ (word >>> 16);
    x = imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = imul(x, 0x846ca68b);
    return x ^ (x >>> 16);
  }

  /** 128 bits from four independently multiplied lanes: not cryptographic, and need not be. */
  function hash128(text: string): string {
    let a = 0x811c9dc5 ^ text.length;
    let b = 0x9e3779b9;
    let c = 0x85ebca6b;
    let d = 0xc2b2ae35;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      a = imul(a ^ unit, 0x01000193);
      b = imul(b ^ unit, 0x5bd1e995);
      c = imul(c ^ unit, 0x27d4eb2d);
      d = imul(d ^ unit, 0x165667b1);
    }
    return (
      hex8(avalanche(a)) + hex8(avalanche(b ^ a)) + hex8(avalanche(c ^ b)) + hex8(avalanche(d ^ c))
    );
  }

  return (value: unknown) => hash128(canonical(value));
}

export const STEP_HASHER_SOURCE: string = createStepHasher.toString();

/** Namespace and method identifiers, a hash and a count fit well within this. */
export const MAX_KEY_LENGTH = 1024;

const hashOnHost = createStepHasher();

/**
 * Whether `key` is the key of a call of `label` with the arguments `json` (the JSON text the
 * guest sent, which is also what the tool receives): its hash part must be theirs.
 */
export function keyMatchesArguments(key: string, label: string, args: unknown): boolean {
  const hash = key.lastIndexOf("#");
  return hash > 0 && key.slice(0, hash) === `${label}:${hashOnHost(args)}`;
}
