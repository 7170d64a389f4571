/** One row of the Active resources page. */
export interface ResourceRow { type: string; count: number }

/**
 * Handles and requests keeping the event loop alive, counted by type (`Timeout`, `TCPWRAP`, …).
 * A count that climbs with traffic is a timer or socket leak.
 *
 * @example
 * ```ts
 * activeResources(); // [{ type: 'TCPServerWrap', count: 1 }, { type: 'Timeout', count: 3 }]
 * ```
 */
export function activeResources(): { total: number; byType: ResourceRow[] } {
  const counts = new Map<string, number>();
  const all = process.getActiveResourcesInfo();
  for (const t of all) counts.set(t, (counts.get(t) ?? 0) + 1);
  const byType = [...counts].map(([type, count]) => ({ type, count })).sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : 1));
  return { total: all.length, byType };
}
