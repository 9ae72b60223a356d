// Types of erth-sync/vue (vue.js): composables over an open ErthDb.

import type { MaybeRefOrGetter, Plugin, Ref } from "vue";
import type { ErthDb, ErthError, Row, SqlParam, SyncStatus } from "./index.js";

/** `app.use(createErth(db))`: makes `db` the database of every composable in the app. */
export declare function createErth(db: ErthDb): Plugin;

/** In a component's `setup`: makes `db` the database of the composables of its descendants. */
export declare function provideErth(db: ErthDb): void;

/** The provided database (to write: `useErth().execute(...)`); throws `InvalidInput` without one. */
export declare function useErth(): ErthDb;

/** A live query's state, as refs. */
export interface QueryRefs<T> {
  /**
   * The rows (`[]` until the first result). Rows that did not change keep their identity
   * between results (matched by their `id` column, else by position), and the array itself
   * is the same while no row changed.
   */
  data: Readonly<Ref<T[]>>;
  /** `true` until the first result (or error) of the current statement. */
  isLoading: Readonly<Ref<boolean>>;
  /** Why the query could not run (`Sql` for bad SQL or a write statement), else `null`. */
  error: Readonly<Ref<ErthError | null>>;
}

/**
 * A live query (`db.watch`) in a component's `setup` (or an effect scope): the current rows,
 * updated after every committed change to a table the statement reads (local writes, other
 * tabs', synced rows). `sql` and `params` may be refs or getters: a new value runs the new
 * query. It stops with the component (or scope). `T` types the rows (not checked at run time).
 */
export declare function useQuery<T = Row>(sql: MaybeRefOrGetter<string>, params?: MaybeRefOrGetter<SqlParam[]>): QueryRefs<T>;

/** The database's sync status, kept current (`null` until first read). */
export declare function useStatus(): Readonly<Ref<SyncStatus | null>>;
