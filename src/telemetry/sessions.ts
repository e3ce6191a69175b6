/**
 * Distinct session ids seen within a window, for agent_active_sessions. The ids stay in
 * this process (never an attribute); the map is bounded, and pruned when the gauge is read.
 */
export interface SessionTracker {
  touch(id: string): void;
  /** Drops sessions idle for longer than the window and returns how many remain. */
  count(): number;
}

export function createSessionTracker(windowMs: number, max: number, now: () => number = Date.now): SessionTracker {
  const lastSeen = new Map<string, number>();
  const prune = () => {
    const cutoff = now() - windowMs;
    // Map iteration follows insertion order and touch() re-inserts: the oldest come first.
    for (const [id, at] of lastSeen) {
      if (at > cutoff) break;
      lastSeen.delete(id);
    }
  };
  return {
    touch(id) {
      if (lastSeen.delete(id) || lastSeen.size < max) {
        lastSeen.set(id, now());
        return;
      }
      prune();
      if (lastSeen.size < max) lastSeen.set(id, now());
    },
    count() {
      prune();
      return lastSeen.size;
    },
  };
}
