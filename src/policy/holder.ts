import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { isSidecarError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { compilePolicyText, loadPolicyFile, readPolicyFile } from './load.ts';
import type { Policy } from './rbac.ts';

export interface PolicyHolderOptions {
  /** The policy file; undefined serves the built-in default and watches nothing. */
  file: string | undefined;
  logger: Logger;
  /** Called after a new policy is in force. */
  onReload?: ((policy: Policy) => void) | undefined;
  /** Polling interval of the file watch. */
  intervalMs?: number | undefined;
  /** False: load the file once and watch nothing (validate). */
  watch?: boolean | undefined;
}

export interface PolicyHolder {
  /** The policy in force. Read it once per request: a reload never changes it under a request. */
  current(): Policy;
  /** Re-reads the file (SIGHUP calls this). True when the new policy is in force; false keeps the old one. */
  reload(): boolean;
  /** Stops watching; safe to call twice. */
  close(): void;
}

/**
 * Loads the policy (a bad file throws SIDECAR_POLICY_INVALID: the sidecar must not start on
 * it) and keeps it current: the file is polled and reloaded when it changes. A changed file
 * that fails validation is logged and refused; the running policy stays in force.
 *
 * @example
 * const policies = createPolicyHolder({ file: config.policy.file, logger });
 * process.on('SIGHUP', () => policies.reload());
 * const decision = policies.current().decide('GET', '/api/v1/agents', principal);
 */
export function createPolicyHolder(options: PolicyHolderOptions): PolicyHolder {
  const { file, logger, onReload } = options;
  if (file === undefined) {
    const policy = loadPolicyFile();
    logWarnings(logger, policy);
    return { current: () => policy, reload: () => true, close() {} };
  }
  let text = readPolicyFile(file);
  let policy = compilePolicyText(text, file);
  logWarnings(logger, policy);

  const reload = (): boolean => {
    let next: Policy;
    try {
      const nextText = readPolicyFile(file);
      // Touched, or seen twice mid-write: the policy in force already is this text.
      if (nextText === text) return true;
      next = compilePolicyText(nextText, file);
      text = nextText;
    } catch (err) {
      logger.error(
        { event_type: 'policy_reload', file, error_type: isSidecarError(err) ? err.code : 'SIDECAR_POLICY_INVALID', error: (err as Error).message },
        'policy reload refused; the running policy stays in force',
      );
      return false;
    }
    // One reference assignment: a request that already read current() keeps its object.
    policy = next;
    logger.info({ event_type: 'policy_reload', file, routes: next.templates.length, roles: next.roles.size }, 'policy reloaded');
    logWarnings(logger, next);
    if (onReload !== undefined) {
      try {
        onReload(next);
      } catch (err) {
        logger.error({ err, event_type: 'policy_reload' }, 'policy reload listener failed');
      }
    }
    return true;
  };

  let settle: NodeJS.Timeout | undefined;
  // Polling, unlike fs.watch, follows the path: editors that save by writing a new file and
  // renaming it over the old one, and Kubernetes ConfigMap symlink swaps, are both seen.
  const onChange = (curr: Stats, prev: Stats) => {
    if (curr.nlink === 0 && curr.mtimeMs === 0) {
      // Removed, or mid-replacement: keep serving; the next stat that finds it reloads.
      logger.warn({ event_type: 'policy_reload', file }, 'policy file is missing; the running policy stays in force');
      return;
    }
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    // A short settle so that a file still being written is read once, complete.
    clearTimeout(settle);
    settle = setTimeout(reload, 50).unref();
  };
  const watching = options.watch !== false;
  if (watching) watchFile(file, { interval: options.intervalMs ?? 500, persistent: false }, onChange);

  let closed = false;
  return {
    current: () => policy,
    reload,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(settle);
      if (watching) unwatchFile(file, onChange);
    },
  };
}

function logWarnings(logger: Logger, policy: Policy): void {
  for (const warning of policy.warnings) logger.warn({ event_type: 'policy', source: policy.source }, warning);
}
