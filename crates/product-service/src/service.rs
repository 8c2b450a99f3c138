//! The `product.v1.ProductService` handlers: thin glue from the generated
//! trait to the shared standard methods.

use std::sync::Arc;

use api::product::v1::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ListProductsRequest,
    ListProductsResponse, Product, UpdateProductRequest, product_service_server::ProductService,
};
use resource_store::{
    Crud, Store,
    paging::{PageTokenKey, PageTokens},
};
use tonic::{Request, Response, Status};

use crate::store::Products;

const PAGE_TOKENS: PageTokens = PageTokens::new("product.v1.ListProducts");

/// The service implementation over a shared product [`Store`].
#[derive(Debug, Clone)]
pub struct ProductApi {
    products: Crud<Products>,
}

impl ProductApi {
    pub fn new(store: Arc<dyn Store<Products>>, key: PageTokenKey) -> Self {
        Self {
            products: Crud::new(store, PAGE_TOKENS.with_key(key)),
        }
    }
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let product = self.products.get(&request.into_inner().id).await?;
        Ok(Response::new(product))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let req = request.into_inner();
        let category = Some(req.category.as_str()).filter(|c| !c.is_empty());
        let (products, next_page_token) = self
            .products
            .list(req.page_size, &req.page_token, category)
            .await?;
        Ok(Response::new(ListProductsResponse {
            products,
            next_page_token,
        }))
    }

    async fn create_product(
        &self,
        request: Request<CreateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let product = self.products.create(request.into_inner().product).await?;
        tracing::info!(id = %product.id, "product created");
        Ok(Response::new(product))
    }

    async fn update_product(
        &self,
        request: Request<UpdateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let req = request.into_inner();
        let product = self
            .products
            .update(req.product, req.update_mask.as_ref())
            .await?;
        Ok(Response::new(product))
    }

    async fn delete_product(
        &self,
        request: Request<DeleteProductRequest>,
    ) -> Result<Response<()>, Status> {
        self.products.delete(&request.into_inner().id).await?;
        Ok(Response::new(()))
    }
}
