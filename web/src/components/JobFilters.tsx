import { useId } from 'react';
import { JOB_STATUSES, JOB_TYPES, type JobStatus, type JobType } from '../api/jobs';

export interface Filters {
  status: JobStatus | '';
  type: JobType | '';
}

export function JobFilters({ value, onChange }: { value: Filters; onChange(next: Filters): void }) {
  const id = useId();
  return (
    <div className="filters" role="group" aria-label="Filters">
      <div className="field field--inline">
        <label htmlFor={`${id}-status`}>Status</label>
        <select
          id={`${id}-status`}
          value={value.status}
          onChange={(e) => onChange({ ...value, status: e.target.value as JobStatus | '' })}
        >
          <option value="">any</option>
          {JOB_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div className="field field--inline">
        <label htmlFor={`${id}-type`}>Type</label>
        <select id={`${id}-type`} value={value.type} onChange={(e) => onChange({ ...value, type: e.target.value as JobType | '' })}>
          <option value="">any</option>
          {JOB_TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </div>
    </div>
  );
}
