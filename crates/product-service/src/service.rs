//! The `product.v1.ProductService` handlers: thin glue from the generated
//! trait to the shared standard methods.

use std::sync::Arc;

use api::product::v1::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ListProductsRequest,
    ListProductsResponse, Product, UpdateProductRequest, product_service_server::ProductService,
};
use resource_store::{CrudError, paging::PageTokens};
use tonic::{Request, Response, Status};

use crate::store::ProductTable;

const PAGE_TOKENS: PageTokens = PageTokens::new("product.v1.ListProducts");

/// The service implementation over a shared [`ProductTable`].
#[derive(Debug, Clone)]
pub struct ProductApi {
    table: Arc<ProductTable>,
}

impl ProductApi {
    pub fn new(table: Arc<ProductTable>) -> Self {
        Self { table }
    }
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let product = self.table.get_checked(&request.into_inner().id)?;
        Ok(Response::new(product))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let req = request.into_inner();
        let category = Some(req.category.as_str()).filter(|c| !c.is_empty());
        let (products, next_page_token) = self
            .table
            .list_page(&PAGE_TOKENS, req.page_size, &req.page_token, category)
            .map_err(CrudError::from)?;
        Ok(Response::new(ListProductsResponse {
            products,
            next_page_token,
        }))
    }

    async fn create_product(
        &self,
        request: Request<CreateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let product = self.table.create_checked(request.into_inner().product)?;
        tracing::info!(id = %product.id, "product created");
        Ok(Response::new(product))
    }

    async fn update_product(
        &self,
        request: Request<UpdateProductRequest>,
    ) -> Result<Response<Product>, Status> {
        let req = request.into_inner();
        let product = self
            .table
            .update_checked(req.product, req.update_mask.as_ref())?;
        Ok(Response::new(product))
    }

    async fn delete_product(
        &self,
        request: Request<DeleteProductRequest>,
    ) -> Result<Response<()>, Status> {
        self.table.delete_checked(&request.into_inner().id)?;
        Ok(Response::new(()))
    }
}
