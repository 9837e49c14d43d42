// Deterministic data for the benchmark's servers: the same seed gives the same records on every
// machine and run, so token counts are comparable between runs.

export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  /** `count` distinct items, in a random order. */
  sample<T>(items: readonly T[], count: number): T[];
  chance(p: number): boolean;
  /** One of the keys, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K;
  /** A money amount with two decimals. */
  money(min: number, max: number): number;
}

export function createRandom(seed: string): Random {
  // mulberry32 over an FNV-1a hash of the seed: small, fast and good enough for fake data.
  let state = 2166136261;
  for (let i = 0; i < seed.length; i++) state = Math.imul(state ^ seed.charCodeAt(i), 16777619);
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  };
  return {
    next,
    int,
    pick,
    sample(items, count) {
      const copy = [...items];
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [copy[i], copy[j]] = [copy[j] as (typeof copy)[number], copy[i] as (typeof copy)[number]];
      }
      return copy.slice(0, count);
    },
    chance: (p) => next() < p,
    weighted(weights) {
      const entries = Object.entries(weights) as Array<[keyof typeof weights, number]>;
      let roll = next() * entries.reduce((sum, [, weight]) => sum + weight, 0);
      for (const [key, weight] of entries) {
        roll -= weight;
        if (roll < 0) return key;
      }
      return (entries.at(-1) as [keyof typeof weights, number])[0];
    },
    money: (min, max) => Math.round((min + next() * (max - min)) * 100) / 100,
  };
}

export const FIRST_NAMES = words(`
  Ana Ben Chloé Daniel Elif Farid Grace Hiro Ines Jonas Kavya Liam Mei Nadia Omar Priya Quentin
  Rosa Sven Tara Uma Victor Wen Ximena Yusuf Zoe Aarav Beatriz Carlos Dana Emeka Freya Gabriel
  Hana Ivan Julia Kenji Lucía Mateo Noor Olga Pedro
`);

export const LAST_NAMES = words(`
  Okafor Lindqvist Moreau Tanaka Schneider Haddad Kowalski Nguyen Fernández O'Brien Rossi Patel
  Andersen Kim Silva Novak Mensah Fischer Ito Costa Dubois Yilmaz Hughes Bakker Larsen Gupta
  Reyes Walsh Ortiz Sato Weber Chen Ahmed Jansen Popescu Murphy
`);

const COMPANY_STEMS = words(`
  Northwind Bluefin Cobalt Evergreen Granite Harbor Ironwood Juniper Keystone Lumen Meridian
  Nimbus Orchard Pinnacle Quartz Redwood Summit Tidal Umber Vantage Willow Zephyr Atlas Beacon
  Cascade Driftwood Ember Falcon Glacier Helix Indigo Jasper Kestrel Lattice Mosaic Nova Onyx
  Prism Quill Rook Sable Trellis Vertex Wren
`);

const COMPANY_SUFFIXES = words(`
  Labs Systems Health Logistics Analytics Foods Energy Capital Retail Robotics Media Biotech
  Freight Software Insurance Networks
`);

/** `count` distinct company names. */
export function companyNames(random: Random, count: number): string[] {
  const names = new Set<string>();
  while (names.size < count)
    names.add(`${random.pick(COMPANY_STEMS)} ${random.pick(COMPANY_SUFFIXES)}`);
  return [...names];
}

/** `count` distinct "First Last" names. */
export function personNames(random: Random, count: number): string[] {
  const names = new Set<string>();
  while (names.size < count) names.add(`${random.pick(FIRST_NAMES)} ${random.pick(LAST_NAMES)}`);
  return [...names];
}

export function words(text: string): string[] {
  return text.trim().split(/\s+/);
}

export function slug(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}

/** An ISO timestamp `minutes` after `start` (an ISO date or timestamp). */
export function addMinutes(start: string, minutes: number): string {
  return new Date(Date.parse(start) + minutes * 60_000).toISOString().replace(".000Z", "Z");
}
