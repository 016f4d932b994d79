// OpenAPI details that do not belong to any one route: a stable operationId for every operation, derived from
// its method and path so that a new route gets one without anyone remembering to write it.

/**
 * `GET /rest/api/1.0/projects/:projectKey/repos` -> `getApiProjectsByProjectKeyRepos`: the method, then the
 * REST root and each path segment in camel case, with "rest" and the version left out (they are the same for
 * every operation of a root) and path parameters as "By<Name>".
 */
export function operationIdOf(method: string, url: string): string {
  const words: string[] = [];
  const segments = url.split('?')[0]!.split('/').filter(Boolean);
  segments.forEach((segment, i) => {
    if (i === 0 && segment === 'rest') return;
    if (i === 2 && segments[0] === 'rest' && /^\d+(\.\d+)*$/.test(segment)) return;
    const param = /^[:{]([^}]+)}?$/.exec(segment);
    const parts = (param ? param[1]! : segment).split(/[^A-Za-z0-9]+/).filter(Boolean);
    if (param) words.push('By');
    words.push(...parts.map((p) => p[0]!.toUpperCase() + p.slice(1)));
  });
  return method.toLowerCase() + words.join('');
}

/**
 * Hands out operationIds and keeps them unique: should two routes ever map to the same id, the later one gets
 * a numeric suffix. Ids are remembered per route, so generating the document again gives the same answer.
 */
export class OperationIds {
  private readonly byRoute = new Map<string, string>();
  private readonly taken = new Set<string>();

  idFor(method: string, url: string, explicit?: string): string {
    const key = `${method.toUpperCase()} ${url}`;
    const known = this.byRoute.get(key);
    if (known) return known;
    const base = explicit ?? operationIdOf(method, url);
    let id = base;
    for (let n = 2; this.taken.has(id); n++) id = `${base}${n}`;
    this.taken.add(id);
    this.byRoute.set(key, id);
    return id;
  }
}
