//! `saga inventory`: the shows of the inventory participant, over NATS as the admin.

use super::{Error, InventoryAction, InventoryArgs};
use std::process::ExitCode;

pub async fn run(args: InventoryArgs) -> Result<ExitCode, Error> {
    let client = args.admin.connect().await?;
    use saga_participants::admin;
    let shows = match args.action {
        InventoryAction::AddShow { show_id, capacity } => {
            vec![admin::create_show(&client, &show_id, capacity).await?]
        }
        InventoryAction::Shows => admin::shows(&client).await?,
    };
    super::print_table(&seat_table(&shows));
    Ok(ExitCode::SUCCESS)
}

/// Shows as a table: capacity = free + held + sold.
pub(super) fn seat_table(
    shows: &[saga_participants::inventory::seats::SeatMap],
) -> comfy_table::Table {
    let mut table = super::table(["show", "capacity", "free", "held", "sold"]);
    for map in shows {
        table.add_row([
            map.show_id.clone(),
            map.capacity.to_string(),
            map.free().to_string(),
            map.held.to_string(),
            map.sold.to_string(),
        ]);
    }
    table
}
