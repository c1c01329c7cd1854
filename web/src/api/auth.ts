import type { components, paths } from './generated/auth';
import { route, type Operation, type RequestBody, type ResponseBody } from './contract';
import type { HttpClient } from './http';

export type User = components['schemas']['UserView'];
type Op<P extends keyof paths> = Operation<paths, P, 'post'>;
const r = route<paths, keyof paths & string>;

/** The auth service's `/api/auth` routes (API §3). */
export class AuthApi {
  constructor(private readonly http: HttpClient) {}

  signup(body: RequestBody<Op<'/api/auth/signup'>>): Promise<ResponseBody<Op<'/api/auth/signup'>, 202>> {
    return this.http.request('POST', r('/api/auth/signup'), { body, session: false });
  }

  verifyToken(token: string): Promise<ResponseBody<Op<'/api/auth/verify/{token}'>, 200>> {
    return this.http.request('POST', r('/api/auth/verify/{token}', { token }), { session: false });
  }

  verifyOtp(body: RequestBody<Op<'/api/auth/verify-otp'>>): Promise<ResponseBody<Op<'/api/auth/verify-otp'>, 200>> {
    return this.http.request('POST', r('/api/auth/verify-otp'), { body, session: false });
  }

  resendVerification(
    body: RequestBody<Op<'/api/auth/resend-verification'>>,
  ): Promise<ResponseBody<Op<'/api/auth/resend-verification'>, 202>> {
    return this.http.request('POST', r('/api/auth/resend-verification'), { body, session: false });
  }

  login(body: RequestBody<Op<'/api/auth/login'>>): Promise<ResponseBody<Op<'/api/auth/login'>, 200>> {
    return this.http.request('POST', r('/api/auth/login'), { body, session: false });
  }

  /** Spends the refresh_token cookie for new cookies. */
  refresh(): Promise<ResponseBody<Op<'/api/auth/refresh-token'>, 200>> {
    return this.http.request('POST', r('/api/auth/refresh-token'), { session: false });
  }

  logout(): Promise<void> {
    return this.http.request('POST', r('/api/auth/logout'), { session: false });
  }

  forgotPassword(
    body: RequestBody<Op<'/api/auth/forgot-password'>>,
  ): Promise<ResponseBody<Op<'/api/auth/forgot-password'>, 202>> {
    return this.http.request('POST', r('/api/auth/forgot-password'), { body, session: false });
  }

  resetPassword(
    token: string,
    body: RequestBody<Op<'/api/auth/reset/{token}'>>,
  ): Promise<ResponseBody<Op<'/api/auth/reset/{token}'>, 200>> {
    return this.http.request('POST', r('/api/auth/reset/{token}', { token }), { body, session: false });
  }

  changePassword(
    body: RequestBody<Op<'/api/auth/change-password'>>,
  ): Promise<ResponseBody<Op<'/api/auth/change-password'>, 200>> {
    return this.http.request('POST', r('/api/auth/change-password'), { body });
  }

  me(): Promise<ResponseBody<Operation<paths, '/api/auth/me', 'get'>, 200>> {
    return this.http.request('GET', r('/api/auth/me'));
  }
}
