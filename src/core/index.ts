export type { BodyHead, BodyTransform, ForwardedValues, RequestBody, RequestContext, RequestTelemetry, ResponseBodyHook } from './context.ts';
export { combineObservers, type RequestObserver } from './observer.ts';
export type { ReadinessCheck } from './readiness.ts';
export { runStages, type Stage } from './stages.ts';
export type { RequestForwarder, UpgradeRelay } from './handlers.ts';
export { addResponseBody, chainResponseBodies, chainTransforms, keepResponseBody } from './response-body.ts';
export type { SideListener } from './listener.ts';
