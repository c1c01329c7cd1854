// Type-level links between the client and the generated OpenAPI types: a route that disappears,
// a renamed field or a changed body shape in either service's document breaks the type-check.

/** The operation of `Paths[P]` for an HTTP method. */
export type Operation<Paths, P extends keyof Paths, M extends 'get' | 'post'> = Paths[P] extends Record<
  M,
  infer O
>
  ? O
  : never;

/** The JSON request body of an operation. */
export type RequestBody<O> = O extends { requestBody?: { content: { 'application/json': infer B } } }
  ? B
  : never;

/** The JSON body of one response status of an operation. */
export type ResponseBody<O, S extends number> = O extends { responses: infer R }
  ? S extends keyof R
    ? R[S] extends { content: { 'application/json': infer B } }
      ? B
      : void
    : never
  : never;

/** A route of the document, with `{param}`s filled in. */
export function route<Paths, P extends keyof Paths & string>(
  path: P,
  params: Record<string, string> = {},
): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`missing route parameter ${name} for ${path}`);
    return encodeURIComponent(value);
  });
}
