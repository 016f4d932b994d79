// What a user chose on the web pages and expects to find again at the next sign-in (a session ends; this does
// not): the mirror they clone from. One row per user, removed with the user.
import type { Db } from '../store/database.js';

export class UserPreferences {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number = Date.now,
  ) {}

  async preferredMirror(userId: number): Promise<string | undefined> {
    const row = await this.db.selectFrom('user_preferences').select('preferred_mirror_id').where('user_id', '=', userId).executeTakeFirst();
    return row?.preferred_mirror_id ?? undefined;
  }

  /** `undefined` forgets the choice. */
  async setPreferredMirror(userId: number, mirrorId: string | undefined): Promise<void> {
    const values = { preferred_mirror_id: mirrorId ?? null, updated_at: this.clock() };
    await this.db
      .insertInto('user_preferences')
      .values({ user_id: userId, ...values })
      .onConflict((oc) => oc.column('user_id').doUpdateSet(values))
      .execute();
  }
}
