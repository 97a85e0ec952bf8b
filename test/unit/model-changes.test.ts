import { describe, expect, it } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import {
  type ModelChange,
  type ModelEvent,
  modelChangeInput,
  resolveModelOptions,
} from '../../src/integrations/model-changes.js';

const subject = { type: 'Post', id: 1 };

function change(event: ModelEvent, extra: Partial<ModelChange> = {}): ModelChange {
  return {
    event,
    model: { title: 'New' },
    subject,
    attributes: { id: 1, title: 'New', body: 'b', updatedAt: new Date('2026-01-02T00:00:00Z') },
    ...extra,
  };
}

describe('modelChangeInput()', () => {
  it('records the event with no attribute values unless logOnly or logAll asks for them', () => {
    const input = modelChangeInput(change('created'), resolveModelOptions('Post'));
    expect(input).toEqual({ description: 'created', event: 'created', subject, properties: {} });
  });

  it("treats logOnly ['*'] as logAll and removes logExcept and exceptAttributes", () => {
    const options = resolveModelOptions(
      'Post',
      { logOnly: ['*'], logExcept: ['body'] },
      {
        exceptAttributes: ['updatedAt'],
      },
    );
    expect(modelChangeInput(change('created'), options)?.properties).toEqual({
      attributes: { id: 1, title: 'New' },
    });
  });

  it('compares values itself when the ORM does not say what changed, dates by time', () => {
    const options = resolveModelOptions('Post', { logAll: true, logOnlyDirty: true });
    const input = modelChangeInput(
      change('updated', {
        old: { id: 1, title: 'Old', body: 'b', updatedAt: new Date('2026-01-02T00:00:00Z') },
      }),
      options,
    );
    expect(input?.properties).toEqual({ attributes: { title: 'New' }, old: { title: 'Old' } });
  });

  it('with dontSubmitEmptyLogs skips an update of unlogged attributes and an event with nothing to record', () => {
    const options = resolveModelOptions('Post', { logOnly: ['title'], dontSubmitEmptyLogs: true });
    const updatedBody = change('updated', {
      old: { id: 1, title: 'New', body: 'a', updatedAt: null },
      changed: ['body', 'updatedAt'],
    });
    expect(modelChangeInput(updatedBody, options)).toBeNull();
    const nothingLogged = resolveModelOptions('Post', { dontSubmitEmptyLogs: true });
    expect(modelChangeInput(change('deleted'), nothingLogged)).toBeNull();
  });

  it('records all logged attributes of an update, with old values, without logOnlyDirty', () => {
    const options = resolveModelOptions('Post', { logOnly: ['title', 'body'] });
    const input = modelChangeInput(
      change('updated', { old: { id: 1, title: 'Old', body: 'b' }, changed: ['title'] }),
      options,
    );
    expect(input?.properties).toEqual({
      attributes: { title: 'New', body: 'b' },
      old: { title: 'Old', body: 'b' },
    });
  });

  it('uses useLogName, descriptionForEvent and recordEvents', () => {
    const options = resolveModelOptions<{ title: string }>('Post', {
      recordEvents: ['created'],
      useLogName: 'posts',
      descriptionForEvent: (event, model) => `${event} "${model.title}"`,
    });
    expect(modelChangeInput(change('created'), options as never)).toMatchObject({
      logName: 'posts',
      description: 'created "New"',
    });
    expect(modelChangeInput(change('deleted'), options as never)).toBeNull();
  });

  it('rejects an unknown event in recordEvents when the hooks are attached', () => {
    let caught: unknown;
    try {
      resolveModelOptions('Post', { recordEvents: ['created', 'saved' as ModelEvent] });
    } catch (error) {
      caught = error;
    }
    expect(isActivityLogError(caught, 'VALIDATION_FAILED')).toBe(true);
    expect((caught as Error).message).toContain('"saved"');
  });
});
