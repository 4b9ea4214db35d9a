// The shipped real well data (data/wells/, Petrobras 3W, CC BY 4.0) as readings in the
// catalog's names. 3W columns map to the instrument channels; the 3W event label is not a
// channel and travels as an extra field (kept in esp_telemetry.extra).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WELLS_DIR = fileURLToPath(new URL('../../data/wells/', import.meta.url));

/** 3W CSV column → catalog column (or extra field). */
export const COLUMN_MAP: Readonly<Record<string, string>> = {
  p_pdg_pa: 'downhole_gauge_pressure_pa',
  p_tpt_pa: 'tree_pressure_pa',
  t_tpt_degc: 'tree_temperature_degc',
  p_mon_ckp_pa: 'choke_upstream_pressure_pa',
  t_jus_ckp_degc: 'choke_downstream_temperature_degc',
  p_jus_ckgl_pa: 'gas_lift_pressure_pa',
  t_jus_ckgl_degc: 'gas_lift_temperature_degc',
  qgl_sm3_s: 'gas_lift_flow_sm3_s',
  class_3w: 'event_class_3w',
};

export interface WellSeries {
  readonly wellId: string;
  /** Readings in file order: `ts` ISO-8601 Z, `seq` the 1-based row, then channel values. */
  readonly readings: Record<string, string | number>[];
}

/** Loads every CSV in `dir`; empty cells are omitted (channel not reported). */
export function loadWells(dir = WELLS_DIR): WellSeries[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.csv'))
    .sort()
    .map((f) => parseCsv(readFileSync(path.join(dir, f), 'utf8')));
}

function parseCsv(text: string): WellSeries {
  const lines = text.trim().split('\n');
  const header = lines[0]!.split(',');
  let wellId = '';
  const readings = lines.slice(1).map((line, i) => {
    const cells = line.split(',');
    const r: Record<string, string | number> = {};
    header.forEach((h, j) => {
      const v = cells[j] ?? '';
      if (h === 'well_id') wellId = v;
      else if (h === 'ts') r.ts = v;
      else if (v !== '') r[COLUMN_MAP[h] ?? h] = Number(v);
    });
    r.seq = i + 1;
    return r;
  });
  return { wellId, readings };
}
