/** Small timing helpers shared by the benchmarks. Every figure is printed beside its baseline. */

export interface Figure {
  name: string;
  unit: string;
  value: number;
  baseline: { name: string; value: number } | null;
  /** The target, as a ratio to the baseline or an absolute bound; "info" has none. */
  target: { kind: "max-ratio" | "max" | "min" | "min-ratio" | "info"; value: number };
}

/**
 * Times a baseline and a candidate in alternating rounds, so that a noisy neighbour slows both
 * alike, and keeps each one's best round (the least disturbed): ms per operation.
 */
export async function comparePerOp(
  baseline: () => unknown,
  candidate: () => unknown,
  { iterations, rounds = 9, warmup = 20 }: { iterations: number; rounds?: number; warmup?: number },
): Promise<{ baseline: number; candidate: number }> {
  for (let i = 0; i < warmup; i++) {
    await baseline();
    await candidate();
  }
  let best = { baseline: Number.POSITIVE_INFINITY, candidate: Number.POSITIVE_INFINITY };
  for (let round = 0; round < rounds; round++) {
    for (const which of ["baseline", "candidate"] as const) {
      const fn = which === "baseline" ? baseline : candidate;
      const started = performance.now();
      for (let i = 0; i < iterations; i++) await fn();
      const perOp = (performance.now() - started) / iterations;
      if (perOp < best[which]) best = { ...best, [which]: perOp };
    }
  }
  return best;
}

/** Runs `fn` `iterations` times after `warmup` runs; returns the median of `rounds` averages. */
export async function timePerOp(
  fn: () => unknown,
  { iterations, rounds = 5, warmup = 20 }: { iterations: number; rounds?: number; warmup?: number },
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    for (let i = 0; i < iterations; i++) await fn();
    samples.push((performance.now() - started) / iterations);
  }
  return median(samples);
}

/** The p-th percentile (0–100) of the values, nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2;
}

export function passes(figure: Figure): boolean {
  const { target, value, baseline } = figure;
  switch (target.kind) {
    case "max":
      return value <= target.value;
    case "min":
      return value >= target.value;
    case "max-ratio":
      return baseline !== null && value / baseline.value <= target.value;
    case "min-ratio":
      return baseline !== null && value / baseline.value >= target.value;
    case "info":
      return true;
  }
}

export function formatTable(figures: Figure[]): string {
  const rows = figures.map((figure) => {
    const ratio =
      figure.baseline === null ? "" : `${(figure.value / figure.baseline.value).toFixed(2)}×`;
    const target =
      figure.target.kind === "info"
        ? "(for information)"
        : figure.target.kind === "max-ratio"
          ? `≤ ${figure.target.value}×`
          : figure.target.kind === "min-ratio"
            ? `≥ ${figure.target.value}×`
            : `${figure.target.kind === "max" ? "≤" : "≥"} ${figure.target.value} ${figure.unit}`;
    return [
      figure.name,
      `${round(figure.value)} ${figure.unit}`,
      figure.baseline === null
        ? ""
        : `${round(figure.baseline.value)} ${figure.unit} (${figure.baseline.name})`,
      ratio,
      target,
      figure.target.kind === "info" ? "" : passes(figure) ? "ok" : "MISSED",
    ];
  });
  const header = ["figure", "measured", "baseline (same run)", "ratio", "target", ""];
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ")} |`;
  return [
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map((row) => line(row)),
  ].join("\n");
}

function round(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(2);
  return value.toFixed(4);
}
