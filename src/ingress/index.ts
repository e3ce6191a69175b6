export { ClientBody, type BodyLimits } from './body.ts';
export { createDrain, type Drain } from './drain.ts';
export { createForwardedResolver, type ForwardedResolver } from './forwarded.ts';
export { createIngress, type Ingress, type IngressOptions } from './server.ts';
export { listenerTimeouts, type ClientTimeouts } from './listener.ts';
export { requestTarget } from './target.ts';
export { requestIdFrom } from './request-id.ts';
export { loadTls, watchTls, type TlsFiles } from './tls.ts';
export { cgiFoldingHeader, foldsLikeCgi, type HeadersWithUnderscores } from './cgi-headers.ts';
