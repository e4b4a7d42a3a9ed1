/**
 * The record types: their contract, the list of those loaded, the
 * classifier of array elements, and schema drift.
 *
 * @module
 */
export {
  type Cell,
  type Column,
  EXTRA_COLUMN,
  type RecordType,
  type RowCell,
  type RowContext,
  settingOf,
  type TypeSetting,
} from "./record_type.ts";
export { RECORD_TYPES } from "./types.ts";
export { Classifier, type Outcome } from "./classify.ts";
export { extraText, withoutFields } from "./extra.ts";
export {
  DRIFT_FIELDS_PER_TYPE,
  DriftCounter,
  type DriftEntry,
  type DriftKind,
  type DriftShape,
  type JsonKind,
  PART_DRIFT_FIELDS,
} from "./drift.ts";
