// Text shown to anyone who can reach the sidecar, cleaned of internal network addresses. Pure.

/**
 * A probe's detail text without network addresses: IPv4 and IPv6 (with or without a port),
 * `host.domain:port`, and the host after ENOTFOUND / EAI_AGAIN. /readyz and /startupz answer
 * anyone who can reach the sidecar.
 */
export function scrubAddresses(text: string): string {
  return (
    text
      .replace(/\b(ENOTFOUND|EAI_AGAIN)\s+\S+/g, '$1 [host]')
      .replace(/\[[0-9a-fA-F:.]+\](:\d+)?/g, '[address]')
      .replace(/\b(?:\d{1,3}\.){3}\d{1,3}(:\d+)?\b/g, '[address]')
      // IPv6: a `::` form, or all eight groups (so that a time such as 12:30:45 is left alone).
      .replace(/(?<![\w:.])(?=[0-9a-fA-F:]*::)[0-9a-fA-F:]{2,}(?![\w:])/g, '[address]')
      .replace(/\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b/g, '[address]')
      .replace(/\b[\w-]+(\.[\w-]+)+:\d{2,5}\b/g, '[address]')
  );
}
