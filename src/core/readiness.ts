/** A dependency the sidecar needs to serve (a store, the upstream): /readyz asks each. */
export interface ReadinessCheck {
  name: string;
  /** Resolves to a problem description, or undefined when ready. */
  check(): Promise<string | undefined>;
}
