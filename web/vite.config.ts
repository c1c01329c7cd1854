import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// The service URLs are not baked into the build: the app reads them from /config.json at run
// time, so one build serves every environment.
export default defineConfig({
  plugins: [react()],
  server: { port: 5173, strictPort: true },
  build: { target: 'es2022', sourcemap: true },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
});
