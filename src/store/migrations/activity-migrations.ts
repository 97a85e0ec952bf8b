import { addSealErasableFields } from './add-seal-erasable-fields.js';
import { addSealPruning } from './add-seal-pruning.js';
import { addSeals } from './add-seals.js';
import { createActivityTable } from './create-activity-table.js';
import type { Migration } from './migrate-schema.js';

/** Every schema version in order. Add a step at the end; never change one that has been released. */
export const ACTIVITY_MIGRATIONS: readonly Migration[] = Object.freeze([
  { version: 1, name: 'create_activity_table', up: createActivityTable },
  { version: 2, name: 'add_seals', up: addSeals },
  { version: 3, name: 'add_seal_erasable_fields', up: addSealErasableFields },
  { version: 4, name: 'add_seal_pruning', up: addSealPruning },
]);
