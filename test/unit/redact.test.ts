import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACT_KEYS, REDACTED } from '../../src/core/activity.js';
import { redactUrl, secretKeyMatcher, snapshotProperties } from '../../src/core/redact.js';

const isSecret = secretKeyMatcher(DEFAULT_REDACT_KEYS);

describe('default redaction list', () => {
  it('matches secret key names whatever their case and separators', () => {
    for (const key of [
      'api_key',
      'apiKey',
      'X-Api-Key',
      'API-KEY',
      'api key',
      'apikey',
      'jwt',
      'JWT',
      'session_id',
      'sessionId',
      'PHP-SESSION-ID',
      'private_key',
      'privateKey',
      'ssh.private.key',
      'pwd',
      'passwd',
      'auth',
      'AUTH',
      'bearer',
      'dsn',
      'password',
      'token',
      'secret',
      'authorization',
      'cookie',
      'Set-Cookie',
    ]) {
      expect(isSecret(key), key).toBe(true);
    }
  });

  it('matches a short name only as the whole key or one of its words', () => {
    for (const key of ['basic_auth', 'authCode', 'X-Auth', 'user_pwd', 'idJwt', 'JWTHeader', 'sentryDsn']) {
      expect(isSecret(key), key).toBe(true);
    }
    for (const key of [
      'author',
      'authored_at',
      'authorName',
      'oauth',
      'pwdx',
      'jwts',
      'dsnippet',
      'key',
      'name',
      'total',
    ]) {
      expect(isSecret(key), key).toBe(false);
    }
  });

  it('matches a key with the word key inside credentials, at any depth, and credentials_key itself', () => {
    for (const key of ['key', 'private_key', 'secretKey', 'accessKeyId', 'key-2']) {
      expect(isSecret(key, ['credentials']), key).toBe(true);
      expect(isSecret(key, ['aws_credentials', 0, 'primary']), key).toBe(true);
    }
    expect(isSecret('credentials_key')).toBe(true);
    expect(isSecret('credentials.key')).toBe(true);
    expect(isSecret('keys', ['credentials'])).toBe(false);
    expect(isSecret('user', ['credentials'])).toBe(false);
    expect(isSecret('key', ['settings'])).toBe(false);
    expect(isSecret('key')).toBe(false);
  });

  it('redacts nested credential keys in properties and keeps the rest', () => {
    const copy = snapshotProperties(
      {
        author: 'Ann',
        authored_at: '2026-01-01',
        credentials: { user: 'svc', key: 'k', private_key: 'p', nested: [{ key: 'k2' }] },
        cache: { key: 'orders:1' },
        headers: { 'X-Api-Key': 'abc', Accept: 'json' },
      },
      isSecret,
    );
    expect(copy).toEqual({
      author: 'Ann',
      authored_at: '2026-01-01',
      credentials: { user: 'svc', key: REDACTED, private_key: REDACTED, nested: [{ key: REDACTED }] },
      cache: { key: 'orders:1' },
      headers: { 'X-Api-Key': REDACTED, Accept: 'json' },
    });
  });
});

describe('configured redaction lists', () => {
  it('keep matching every key that contains a long entry, case-insensitively', () => {
    const custom = secretKeyMatcher(['passport']);
    expect(custom('passportNumber')).toBe(true);
    expect(custom('PASSPORT_NO')).toBe(true);
    expect(custom('password')).toBe(false);
  });

  it('match entries regardless of the separators either side uses', () => {
    const custom = secretKeyMatcher(['card_number']);
    expect(custom('cardNumber')).toBe(true);
    expect(custom('Card-Number')).toBe(true);
    expect(custom('billing.card number')).toBe(true);
  });

  it('redact nothing when empty', () => {
    expect(secretKeyMatcher([])('password')).toBe(false);
    expect(secretKeyMatcher(['', '.'])('password')).toBe(false);
  });
});

describe('redactUrl()', () => {
  it('replaces the values of secret-looking query parameters and keeps their names', () => {
    expect(redactUrl('/reset?token=abc123&next=%2Fhome', isSecret)).toBe(
      `/reset?token=${REDACTED}&next=%2Fhome`,
    );
    expect(
      redactUrl(
        '/cb?code=7&api_key=k&X-Api-Key=k2&user%5Bpassword%5D=p&credentials[key]=c&author=ann',
        isSecret,
      ),
    ).toBe(
      `/cb?code=7&api_key=${REDACTED}&X-Api-Key=${REDACTED}&user%5Bpassword%5D=${REDACTED}&credentials[key]=${REDACTED}&author=ann`,
    );
    expect(redactUrl('/x?token=a&&flag&b=&pwd=c&jwt=d', isSecret)).toBe(
      `/x?token=${REDACTED}&&flag&b=&pwd=${REDACTED}&jwt=${REDACTED}`,
    );
    expect(redactUrl('https://app.example/login?Session+Id=s&q=1#top', isSecret)).toBe(
      `https://app.example/login?Session+Id=${REDACTED}&q=1#top`,
    );
  });

  it('redacts parameters in the fragment, and the password of user:password@', () => {
    expect(redactUrl('/app#access_token=t&state=s', isSecret)).toBe(`/app#access_token=${REDACTED}&state=s`);
    expect(redactUrl('/app#/reset?token=t', isSecret)).toBe(`/app#/reset?token=${REDACTED}`);
    expect(redactUrl('/docs#section-2', isSecret)).toBe('/docs#section-2');
    expect(redactUrl('https://bob:hunter2@db.example/x?y=1', isSecret)).toBe(
      `https://bob:${REDACTED}@db.example/x?y=1`,
    );
    expect(redactUrl('/users/@ann?tab=posts', isSecret)).toBe('/users/@ann?tab=posts');
  });

  it('leaves URLs without secret parameters, empty values and bare names as they are', () => {
    for (const url of [
      '/orders/1',
      '/orders?page=2&sort=-created',
      '/reset?token=',
      '/reset?token',
      '/?=x',
      '/a?%zz=1',
    ]) {
      expect(redactUrl(url, isSecret), url).toBe(url);
    }
    expect(redactUrl('/reset?token=abc', secretKeyMatcher([]))).toBe('/reset?token=abc');
  });
});
