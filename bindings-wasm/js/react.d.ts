// Types of erth-sync/react (react.js): a provider and hooks over an open ErthDb.

import type { ReactElement, ReactNode } from "react";
import type { ErthDb, ErthError, Row, SqlParam, SyncStatus } from "./index.js";

export interface ErthProviderProps {
  /** An open database (`await ErthDb.open(...)`); the hooks below use it. */
  db: ErthDb;
  children?: ReactNode;
}

/** Makes `db` the database of every hook below it. */
export declare function ErthProvider(props: ErthProviderProps): ReactElement;

/** The provider's database (to write: `useErth().execute(...)`); throws `InvalidInput` without a provider. */
export declare function useErth(): ErthDb;

/** A live query's state. */
export interface QueryState<T> {
  /**
   * The rows (`[]` until the first result). Rows that did not change keep their identity
   * between results (matched by their `id` column, else by position), and the array itself
   * is the same while no row changed: `memo` and keyed lists re-render only what changed.
   */
  data: T[];
  /** `true` until the first result (or error) arrives. */
  isLoading: boolean;
  /** Why the query could not run (`Sql` for bad SQL or a write statement), else `null`. */
  error: ErthError | null;
}

/**
 * A live query (`db.watch`): the current rows, updated after every committed change to a
 * table the statement reads (local writes, other tabs', synced rows). Components using the
 * same statement and parameters share one query. `T` types the rows (not checked at run time).
 */
export declare function useQuery<T = Row>(sql: string, params?: SqlParam[]): QueryState<T>;

/**
 * `useQuery` for `<Suspense>`: suspends until the first rows, then returns them (kept
 * current the same way); an error is thrown to the nearest error boundary.
 */
export declare function useSuspenseQuery<T = Row>(sql: string, params?: SqlParam[]): T[];

/** The database's sync status, kept current (`null` until first read). */
export declare function useStatus(): SyncStatus | null;
