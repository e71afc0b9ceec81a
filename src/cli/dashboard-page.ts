import { DASHBOARD_ASSETS, renderDashboardPage } from '../dashboard/page.js';
import type { DashboardOptions } from '../dashboard/server.js';

/** The dashboard's page renderer and its content-hashed assets. */
export const dashboardPage: Pick<DashboardOptions, 'renderPage' | 'assets'> = {
  renderPage: renderDashboardPage,
  assets: DASHBOARD_ASSETS,
};
