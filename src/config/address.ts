export interface HostPort {
  host: string;
  port: number;
}

/** Splits a schema-validated host:port or [v6]:port. */
export function parseAddress(address: string): HostPort {
  const i = address.lastIndexOf(':');
  let host = address.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(i + 1)) };
}

export function formatAddress({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
