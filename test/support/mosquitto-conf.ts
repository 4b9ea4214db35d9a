// The project's mosquitto.conf rewritten for a private broker (tests, bench): its port, its
// persistence directory, and either no identity lines (anonymous clients, for delivery and fault
// tests) or the shipped authentication with the given files. Pure.

export interface DerivedConfOptions {
  readonly port: number;
  readonly persistenceDir: string;
  /** Undefined: anonymous. */
  readonly auth?: {
    readonly passwordFile: string;
    readonly aclFile: string;
    readonly tls?: { readonly port: number; readonly certFile: string; readonly keyFile: string; readonly caFile: string };
  };
}

const IDENTITY_LINES = /^(password_file|acl_file|use_username_as_clientid)\b.*$/gm;
/** The TLS listener: its listener line up to the next section rule. */
const TLS_BLOCK = /^listener 8883[\s\S]*?(?=^# -{5,})/m;

export function deriveMosquittoConf(text: string, o: DerivedConfOptions): string {
  let conf = text
    .replace(/^listener 1883.*$/m, `listener ${o.port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${o.persistenceDir}/`);
  const a = o.auth;
  if (!a)
    return conf
      .replace(TLS_BLOCK, '')
      .replace(IDENTITY_LINES, '')
      .replace(/^per_listener_settings .*$/m, '')
      .replace(/^allow_anonymous .*$/gm, 'allow_anonymous true');
  conf = conf.replace(/^password_file .*$/gm, `password_file ${a.passwordFile}`).replace(/^acl_file .*$/gm, `acl_file ${a.aclFile}`);
  if (!a.tls) return conf.replace(TLS_BLOCK, '');
  return conf
    .replace(/^listener 8883.*$/m, `listener ${a.tls.port} 127.0.0.1`)
    .replace(/^certfile .*$/m, `certfile ${a.tls.certFile}`)
    .replace(/^keyfile .*$/m, `keyfile ${a.tls.keyFile}`)
    .replace(/^cafile .*$/m, `cafile ${a.tls.caFile}`);
}
