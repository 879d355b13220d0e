//! Reports of events and rooms (client-server API §"Reporting content"), kept for the server's
//! admins.

use super::Rooms;
use super::tables::{REPORTS, ReportRecord};
use crate::error::Result;
use crate::storage::Batch;

impl Rooms {
    pub fn store_report(&self, report: &ReportRecord) -> Result<()> {
        let id = self.ids.reserve()?.pos();
        let mut batch = Batch::new();
        REPORTS.put(&mut batch, id.to_be_bytes().to_vec(), report);
        Ok(self.db.write(batch)?)
    }

    /// Every report, oldest first.
    pub fn reports(&self) -> Result<Vec<ReportRecord>> {
        Ok(REPORTS
            .scan_prefix(&*self.db, b"", usize::MAX)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }
}
