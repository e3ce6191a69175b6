import { userInfo } from 'node:os';
import { createLogAudit } from '../audit/index.ts';
import { createLogger } from '../log/index.ts';

/**
 * Key management and decryption are sensitive operations: each is an audit event (a JSON line
 * on stderr, so that stdout carries only the command's output), naming the operator's OS account.
 */
export function auditSensitiveOperation(operation: string, details: Record<string, unknown>): void {
  createLogAudit(createLogger('info', process.stderr)).emit({ event_type: 'sensitive_operation', user_id: operator(), operation, details });
}

function operator(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}
