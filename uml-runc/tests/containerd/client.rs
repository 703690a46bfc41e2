//! Kubelet's side of the CRI: the `k8s-cri` crate's v1 clients (tonic) over containerd's
//! socket, each call blocking on a tokio runtime of the test's own.

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::future::Future;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as cri;

pub struct Cri {
    rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the CRI on containerd's socket.
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let path: PathBuf = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                // The URI is unused: every connection is the socket.
                Endpoint::try_from("http://[::]:0")?
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }))
                    .await
            })
            .expect("connecting to containerd's CRI socket");
        Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    /// Runs one call to its end: Ok the response's message, Err the gRPC status.
    /// `cri.call(cri.rs().version(..))`.
    pub fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt.block_on(fut).map(tonic::Response::into_inner)
    }

    /// The runtime service (a clone of the client: the channel is shared).
    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The image service.
    pub fn is(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }
}
