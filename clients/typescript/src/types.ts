/**
 * Types of requests and answers, looked up in the generated `paths` by method and path.
 *
 * Operations are addressed as `("post", "/internal/v1/wallet/credit")`, never by their
 * OpenAPI operationId, so renaming operations on the server changes nothing here; changing a
 * route's shape changes these types, and `tsc` shows every call that no longer fits.
 */
import type { components, paths } from "./generated/openapi.js";

export type Method = "get" | "put" | "post" | "delete" | "patch";
export type Path = keyof paths;

/** The methods `path` answers (a route without `get` has `get?: never` in `paths`). */
export type MethodsOf<P extends Path> = {
  [M in Method]-?: undefined extends paths[P][M] ? never : M;
}[Method];

/** The operation object of `method` on `path` (never when the route lacks that method). */
export type Operation<P extends Path, M extends Method> = Exclude<paths[P][M], undefined>;

/** The JSON body the operation takes (undefined when it takes none). */
export type RequestBody<P extends Path, M extends Method> =
  Operation<P, M> extends { requestBody?: { content: { "application/json": infer B } } }
    ? B
    : undefined;

type Success = 200 | 201 | 202 | 204;

/** The parsed JSON answer of the operation's 2xx response. */
export type ResponseBody<P extends Path, M extends Method> =
  Operation<P, M> extends { responses: infer R }
    ? {
        [S in keyof R & Success]: R[S] extends { content: { "application/json": infer J } }
          ? J
          : undefined;
      }[keyof R & Success]
    : never;

export type QueryParams<P extends Path, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } }
    ? Exclude<Q, undefined>
    : never;

export type PathParams<P extends Path, M extends Method> =
  Operation<P, M> extends { parameters: { path: infer X } } ? X : never;

export type Schemas = components["schemas"];
export type ProblemCode = Schemas["Problem"]["code"];

/** A page of a list: newest first; pass `next_cursor` back as `cursor`. */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}
