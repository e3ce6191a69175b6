/** Nearest-rank percentile of an ascending array: the smallest value ≥ q% of the samples. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function ratio(a: number, b: number): number | undefined {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : undefined;
}
