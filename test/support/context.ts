// What the global setup hands to every test file (vitest provide/inject).
declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a database on the test server whose user may CREATE DATABASE. */
    postgresAdminUrl: string;
    /** A migrated database that each test file clones. */
    templateDatabase: string;
    /** Which server the tests run against: external, container or embedded. */
    postgresSource: string;
  }
}
export {};
