// Channel catalog: every telemetry channel the service knows, one entry each. The column name
// carries its unit as a suffix; the sink adds a missing column at start-up. Adding a channel is
// one entry here.

/** One telemetry channel. */
export interface Channel {
  /** Column in `esp_telemetry` and key in the JSON reading; snake_case ending in the unit. */
  readonly column: string;
  /** Unit symbol as stored (SI or oil-field customary). */
  readonly unit: string;
  /** Plausible range, inclusive; a value outside it rejects the reading (`out_of_range`). */
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

/**
 * Default catalog: the ESP channels, then the instrument channels of the shipped 3W well data
 * (data/wells/README.md gives the 3W names in brackets).
 */
export const DEFAULT_CATALOG: readonly Channel[] = [
  { column: 'intake_pressure_kpa', unit: 'kPa', min: 0, max: 70_000, description: 'ESP pump intake pressure' },
  { column: 'discharge_pressure_kpa', unit: 'kPa', min: 0, max: 100_000, description: 'ESP pump discharge pressure' },
  { column: 'intake_temperature_degc', unit: '°C', min: -40, max: 250, description: 'ESP pump intake temperature' },
  { column: 'motor_winding_temperature_degc', unit: '°C', min: -40, max: 300, description: 'ESP motor winding temperature' },
  { column: 'motor_current_a', unit: 'A', min: 0, max: 1_000, description: 'ESP motor current' },
  { column: 'motor_voltage_v', unit: 'V', min: 0, max: 10_000, description: 'ESP motor voltage' },
  { column: 'vsd_frequency_hz', unit: 'Hz', min: 0, max: 120, description: 'VSD output frequency' },
  { column: 'vibration_mm_s', unit: 'mm/s', min: 0, max: 500, description: 'ESP vibration velocity (RMS)' },
  { column: 'flow_rate_m3_d', unit: 'm³/d', min: 0, max: 50_000, description: 'Liquid flow rate' },
  { column: 'tubing_head_pressure_kpa', unit: 'kPa', min: 0, max: 70_000, description: 'Tubing head pressure' },
  { column: 'casing_head_pressure_kpa', unit: 'kPa', min: 0, max: 70_000, description: 'Casing head pressure' },
  { column: 'wellhead_temperature_degc', unit: '°C', min: -60, max: 250, description: 'Wellhead temperature' },
  { column: 'motor_power_kw', unit: 'kW', min: 0, max: 5_000, description: 'ESP motor power' },
  { column: 'downhole_gauge_pressure_pa', unit: 'Pa', min: 0, max: 2e8, description: 'Permanent downhole gauge pressure (3W P-PDG)' },
  { column: 'tree_pressure_pa', unit: 'Pa', min: 0, max: 2e8, description: 'Subsea tree transducer pressure (3W P-TPT)' },
  { column: 'tree_temperature_degc', unit: '°C', min: -60, max: 300, description: 'Subsea tree transducer temperature (3W T-TPT)' },
  { column: 'choke_upstream_pressure_pa', unit: 'Pa', min: 0, max: 2e8, description: 'Pressure upstream of the production choke (3W P-MON-CKP)' },
  { column: 'choke_downstream_temperature_degc', unit: '°C', min: -60, max: 300, description: 'Temperature downstream of the production choke (3W T-JUS-CKP)' },
  { column: 'gas_lift_pressure_pa', unit: 'Pa', min: 0, max: 2e8, description: 'Gas-lift line pressure downstream of the gas-lift choke (3W P-JUS-CKGL)' },
  {
    column: 'gas_lift_temperature_degc',
    unit: '°C',
    min: -60,
    max: 300,
    description: 'Gas-lift line temperature downstream of the gas-lift choke (3W T-JUS-CKGL)',
  },
  { column: 'gas_lift_flow_sm3_s', unit: 'sm³/s', min: 0, max: 100, description: 'Gas-lift flow rate at standard conditions (3W QGL)' },
];

/** Columns of `esp_telemetry` that are not channels; a channel may not reuse them. */
export const RESERVED_COLUMNS = ['ts', 'well_id', 'site', 'seq', 'extra', 'received_at', 'ingested_at'] as const;

const COLUMN_RE = /^[a-z][a-z0-9_]{0,62}$/;

/**
 * Checks a catalog: names are safe SQL identifiers, unique, not reserved, ranges ordered.
 * @returns one problem per line; empty when the catalog is usable.
 */
export function catalogProblems(catalog: readonly Channel[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const c of catalog) {
    if (!COLUMN_RE.test(c.column)) problems.push(`channel "${c.column}": column must match ${COLUMN_RE}`);
    if ((RESERVED_COLUMNS as readonly string[]).includes(c.column)) problems.push(`channel "${c.column}": name is reserved`);
    if (seen.has(c.column)) problems.push(`channel "${c.column}": declared twice`);
    if (!(c.min <= c.max)) problems.push(`channel "${c.column}": min ${c.min} > max ${c.max}`);
    seen.add(c.column);
  }
  return problems;
}
