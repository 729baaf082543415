//! Read-ahead over a commercetools pager: the next page is fetched while the current one is
//! mapped and written, with one page buffered (memory stays at about two pages).

use commercetools::CtError;
use commercetools::paging::{DeltaPosition, Keyed, Pager};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pages arriving from a background reader.
pub struct ReadAhead<T> {
    pages: mpsc::Receiver<Result<Vec<T>, CtError>>,
    reader: Option<JoinHandle<Option<DeltaPosition>>>,
}

impl<T: Keyed + DeserializeOwned + Send + 'static> ReadAhead<T> {
    /// Starts reading `pager` in the background.
    pub fn start(mut pager: Pager<T>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let reader = tokio::spawn(async move {
            loop {
                let next = pager.next_page().await;
                let stop = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(page)) => Ok(page),
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
            pager.position()
        });
        Self {
            pages: rx,
            reader: Some(reader),
        }
    }

    /// The next page; `None` when the pager is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, CtError> {
        self.pages.recv().await.transpose()
    }

    /// `(lastModifiedAt, id)` of the last item read, once every page was consumed.
    pub async fn position(mut self) -> Option<DeltaPosition> {
        let reader = self.reader.take()?;
        reader.await.ok().flatten()
    }
}

impl<T> Drop for ReadAhead<T> {
    fn drop(&mut self) {
        // A run that stops early (an error) must not leave the reader fetching.
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}
