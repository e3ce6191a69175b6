import { z } from 'zod';
import type { Principal } from '../auth/index.ts';
import type { SidecarErrorCode } from '../errors/index.ts';

/**
 * A2A 0.3 method names and their 1.0 equivalents (A2A specification 5.3, Method Mapping
 * Reference). Rules are keyed by the 1.0 name, so one entry covers both name sets.
 */
export const A2A_METHODS_0_3: Readonly<Record<string, string>> = Object.freeze({
  'message/send': 'SendMessage',
  'message/stream': 'SendStreamingMessage',
  'tasks/get': 'GetTask',
  'tasks/list': 'ListTasks',
  'tasks/cancel': 'CancelTask',
  'tasks/resubscribe': 'SubscribeToTask',
  'tasks/pushNotificationConfig/set': 'CreateTaskPushNotificationConfig',
  'tasks/pushNotificationConfig/get': 'GetTaskPushNotificationConfig',
  'tasks/pushNotificationConfig/list': 'ListTaskPushNotificationConfigs',
  'tasks/pushNotificationConfig/delete': 'DeleteTaskPushNotificationConfig',
  'agent/getAuthenticatedExtendedCard': 'GetExtendedAgentCard',
});

/** The 1.0 name of an A2A method, whichever name set the request used. */
export const canonicalA2aMethod = (method: string): string => A2A_METHODS_0_3[method] ?? method;

const PERMISSION = /^[\x21-\x7e]+$/;
const PERMISSION_HINT = 'expected a permission such as call:a2a';
const name = z.string({ error: 'expected a name; * matches any run of characters' }).min(1, 'expected a non-empty name').max(1024, 'at most 1024 characters');
const permissions = (example: string) =>
  z.record(name, z.string({ error: PERMISSION_HINT }).regex(PERMISSION, PERMISSION_HINT), {
    error: `expected a mapping of name to permission, e.g. ${example}`,
  });

/** The `a2a:` block of a policy route. */
export const a2aRouteSchema = z.strictObject(
  {
    default: z
      .enum(['allow', 'deny'], { error: 'expected allow (a skill no entry names needs only the route permission) or deny (it is refused)' })
      .default('allow'),
    dryRun: z.boolean({ error: 'expected true or false' }).default(false),
    methods: permissions('{ SendMessage: send:a2a, CancelTask: manage:tasks }').default({}),
    skills: permissions('{ summarize: call:summarize, admin_*: manage:agent }').default({}),
  },
  { error: 'expected a mapping with the keys default, dryRun, methods, skills' },
);
export type A2aRouteDocument = z.output<typeof a2aRouteSchema>;
export const A2A_ROUTE_KEYS = 'default, dryRun, methods, skills';

/** The outcome of authorizing one A2A method or skill. */
export interface A2aDecision {
  readonly allowed: boolean;
  readonly code: SidecarErrorCode | undefined;
  /** The permission that allowed it, or the one the caller lacks; undefined: the route's alone. */
  readonly permission: string | undefined;
}

/** A route's compiled `a2a:` block, bound to the policy's roles. */
export interface A2aRules {
  readonly dryRun: boolean;
  /** The permission the method needs besides the route's (either name set); undefined: none. */
  methodPermission(method: string): string | undefined;
  /** A message's skill; undefined when the message names none (judged as no entry names it). */
  decideSkill(skill: string | undefined, principal: Principal | undefined): A2aDecision;
}

const ALLOWED: A2aDecision = Object.freeze({ allowed: true, code: undefined, permission: undefined });
const NOT_ALLOWED: A2aDecision = Object.freeze({ allowed: false, code: 'SIDECAR_A2A_NOT_ALLOWED', permission: undefined });

function matcher(record: Readonly<Record<string, string>>, key: (k: string) => string): (name: string) => string | undefined {
  const exact = new Map<string, string>();
  const patterns: Array<[RegExp, string]> = [];
  for (const [k, v] of Object.entries(record)) {
    if (k.includes('*'))
      patterns.push([
        new RegExp(
          `^${k
            .split('*')
            .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
          's',
        ),
        v,
      ]);
    else exact.set(key(k), v);
  }
  return (n) => exact.get(n) ?? patterns.find(([re]) => re.test(n))?.[1];
}

/** Compiles an `a2a:` block once per policy load; `grants` is the policy's own role check. */
export function compileA2aRules(doc: A2aRouteDocument, routeDryRun: boolean, grants: (p: Principal | undefined, permission: string) => boolean): A2aRules {
  const methods = matcher(doc.methods, canonicalA2aMethod);
  const skills = matcher(doc.skills, (k) => k);
  const deny = doc.default === 'deny';
  return Object.freeze({
    dryRun: routeDryRun || doc.dryRun,
    methodPermission: (method: string) => methods(canonicalA2aMethod(method)),
    decideSkill(skill: string | undefined, principal: Principal | undefined): A2aDecision {
      const needs = skill === undefined ? undefined : skills(skill);
      if (needs === undefined) return deny ? NOT_ALLOWED : ALLOWED;
      return grants(principal, needs)
        ? { allowed: true, code: undefined, permission: needs }
        : { allowed: false, code: 'SIDECAR_SKILL_FORBIDDEN', permission: needs };
    },
  });
}
