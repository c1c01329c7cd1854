import { useCallback, useState } from 'react';
import { Link } from 'react-router-dom';
import { JobFilters, type Filters } from '../components/JobFilters';
import { JobTable } from '../components/JobTable';
import { StatsChart } from '../components/StatsChart';
import { PAGE_SIZE, useJobList } from '../live/useJobList';
import { useStats } from '../live/useStats';
import { useServices } from '../services';

export function Jobs() {
  const { jobs } = useServices();
  const [filters, setFilters] = useState<Filters>({ status: '', type: '' });
  const fetchPage = useCallback(
    (cursor: string | undefined) => jobs.list({ ...filters, limit: String(PAGE_SIZE), cursor }),
    [jobs, filters],
  );
  const list = useJobList(fetchPage, filters);
  const stats = useStats();

  return (
    <div className="stack">
      <header className="page-head">
        <h1>Your jobs</h1>
        <Link className="button button--primary" to="/jobs/new">
          New job
        </Link>
      </header>
      <section className="card">
        <StatsChart stats={stats} title="Statistics of your jobs" />
      </section>
      <section className="card">
        <JobFilters value={filters} onChange={setFilters} />
        <JobTable list={list} />
      </section>
    </div>
  );
}
