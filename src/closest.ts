/**
 * "Did you mean ...?": the closest of a few valid names to a mistyped one, by edit distance. Pure
 * and dependency-free, so every layer (the CLI's flags and variables, the hub's publish fields)
 * can name the right spelling in its error.
 */

/**
 * The edit distance of `a` and `b` counting insertions, deletions, substitutions and swaps of
 * two adjacent characters as one edit each (optimal string alignment): `prot` -> `port` is 1.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0
  // Three rolling rows: the one before the previous is needed for adjacent swaps.
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, before[j - 2]! + 1)
      current.push(best)
    }
    before = previous
    previous = current
  }
  return previous[b.length]!
}

/**
 * The candidate closest to `name` (case-insensitively), or `undefined` when none is close enough
 * to be a likely typo: at most a third of the candidate's length in edits (and at least 2), or a
 * candidate that starts with `name` (a truncated name, like `redis-pre` for `redis-prefix`).
 * Ties go to the earlier candidate.
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const wanted = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase()
    const distance = editDistance(wanted, lower)
    const near =
      distance <= Math.max(2, Math.floor(candidate.length / 3)) ||
      (wanted.length >= 3 && lower.startsWith(wanted))
    if (near && distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/** `; did you mean X?` naming the closest candidate in `quote`s, or `''` when none is close. */
export function didYouMean(
  name: string,
  candidates: Iterable<string>,
  quote: (candidate: string) => string = (candidate) => candidate,
): string {
  const match = closest(name, candidates)
  return match === undefined ? '' : `; did you mean ${quote(match)}?`
}
