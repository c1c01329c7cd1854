import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router-dom';
import { App } from './App';
import { loadConfig } from './config';
import { createServices, ServicesProvider } from './services';
import './styles.css';

const root = createRoot(document.getElementById('root') as HTMLElement);

loadConfig()
  .then((config) => {
    const services = createServices(config);
    root.render(
      <StrictMode>
        <ServicesProvider services={services}>
          <BrowserRouter>
            <App />
          </BrowserRouter>
        </ServicesProvider>
      </StrictMode>,
    );
  })
  .catch((error: unknown) => {
    root.render(
      <main className="main">
        <section className="card card--narrow" role="alert">
          <h1>Task Vault cannot start</h1>
          <p>{error instanceof Error ? error.message : String(error)}</p>
          <p>The dashboard reads the service URLs from config.json beside index.html.</p>
        </section>
      </main>,
    );
  });
