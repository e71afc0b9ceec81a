/** The dashboard's page renderer and assets (filled in when the page module lands). */
export const dashboardPage: Partial<
  Pick<import('../dashboard/server.js').DashboardOptions, 'renderPage' | 'assets'>
> = {};
